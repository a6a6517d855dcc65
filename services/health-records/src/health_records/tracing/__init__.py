"""Contact tracing (时空伴随): who was where a case was, when the case was; the audit trail."""
