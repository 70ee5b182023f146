"""Errors raised for user mistakes: the CLI and the app print them without a traceback."""


class ScenarioError(ValueError):
    """A scenario, catalog entry or input the user supplied cannot be simulated.

    The message names the field, the offending value and what to do instead.
    """
