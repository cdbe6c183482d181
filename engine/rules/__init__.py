"""Game rules that are pure functions of state: the condition language."""
