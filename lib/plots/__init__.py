"""Figures, drawn with matplotlib + mplhep from result arrays; each module imports matplotlib lazily."""

import logging

# The CMS style lists a 'cursive' font family that few machines have; matplotlib's fallback to
# DejaVu Sans is harmless but would print two warnings in every run and every fit worker.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
