"""Exceptions the library raises. Messages are written for the person using the pack."""


class GanStudioError(Exception):
    """Base class: anything the user can fix by changing an input."""


class CheckpointError(GanStudioError):
    """A checkpoint file is unreadable, corrupt, unsafe or of an unsupported kind."""


class CapabilityError(GanStudioError):
    """A model was asked for something it cannot do (e.g. classes on an unconditional model)."""
