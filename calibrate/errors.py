"""Errors for calibration inputs the user supplied (files, options); printed without a traceback."""

from sim.engine.errors import UserError


class CalibrationError(UserError):
    """A measurement file, profile or calibration option cannot be used; says what to do."""
