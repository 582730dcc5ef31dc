"""The shared vocabulary of the OAuth RFCs that both services speak. No I/O lives here."""
