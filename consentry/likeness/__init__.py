"""The likeness registry (issue 14): people who enrolled their face are protected from
sexualisation (always) and, if they ask, from edits by others."""
