"""Read, map onto the schema, validate, quarantine, store."""
