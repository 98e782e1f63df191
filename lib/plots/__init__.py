"""Figures, drawn with matplotlib + mplhep from result arrays; each module imports matplotlib lazily."""
