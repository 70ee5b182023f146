"""Errors raised for user mistakes: the CLI and the app print them without a traceback."""


class UserError(ValueError):
    """Something the user supplied (a file, a value, an option) cannot be used.

    The message names what is wrong and what to do instead. Packages built on the simulator
    (calibration, the app) raise their own subclasses, so the CLI can print any of them.
    """


class ScenarioError(UserError):
    """A scenario, catalog entry or input the user supplied cannot be simulated.

    The message names the field, the offending value and what to do instead.
    """
