"""Follow-up suggestions: rules, slots, calendar writes, ICS feed."""
