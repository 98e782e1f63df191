"""ebe-calib: event-by-event dimuon mass-resolution calibration for CMS H->mumu."""

__version__ = "0.1.0"
