"""Contact tracing (时空伴随): who was scanned where a case was, when the case was."""
