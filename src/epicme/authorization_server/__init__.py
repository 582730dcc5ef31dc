"""The authorization server: registration, sign-in and consent, tokens, revocation, introspection."""
