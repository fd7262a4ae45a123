"""The suppression list (opt-outs): its rules, SQL, commands, bulk import and endpoints."""
