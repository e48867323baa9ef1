"""What a triage leaves behind: result.json, the timing log (later: SR, key image, webhook)."""
