"""Playthrough state: snapshot, editor (changes), setup, arc progression."""
