"""Z/Higgs peak fits with RooFit. Importing this package does not import ROOT; fitting does.

``task`` (``FitTask``: a fit's events, specs, acceptance and gates), ``runner`` (``fit_category``:
one category, retries and gates included, and the backend cross-check), ``model`` (the RooFit
model, the only ROOT importer with the runner), ``result`` (the picklable results), ``quality``
(the gates), ``undetermined`` (which parameters the data cannot determine), ``effective_width``
(sigma_fit as the DCB's 68 % width), ``fsr`` (the radiation component of ``fit.fsr``),
``shared_fsr`` (the pooled fit's input where a group shares its radiation), ``backend`` (the
CUDA probe), ``native_log`` and ``warm``. The package itself re-exports nothing, so importing one
module never imports the others.
"""
