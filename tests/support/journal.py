"""What the journal offers, as the issue names it: the tests' own copy, independent of the code."""

JOURNAL_TOOLS = frozenset(
    {
        "whoami",
        "create_entry",
        "get_entry",
        "list_entries",
        "update_entry",
        "delete_entry",
        "create_tag",
        "get_tag",
        "list_tags",
        "update_tag",
        "delete_tag",
        "add_tag_to_entry",
    }
)
