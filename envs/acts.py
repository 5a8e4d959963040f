"""The dialogue act, the unit every part of the world speaks in: ``[intent, domain, slot, value]``.

For example ``["Inform", "Hotel", "Area", "north"]``, or ``["bye", "general", "none", "none"]`` for a general act.
``Act`` is what components produce: a list of four strings, as ConvLab-2 and the recorded traces have it.
``ActLike`` is what they accept: any read-only sequence of four strings (a tuple too).
"""

from collections.abc import Sequence

Act = list[str]  # [intent, domain, slot, value]
ActLike = Sequence[str]  # an act a function only reads


def check_system_act(act: object) -> None:
    """Raise ValueError unless ``act`` is four strings (a list or a tuple), as a simulated user receives them."""
    if not (
        isinstance(act, (list, tuple))  # a tuple of types: faster than a union
        and len(act) == 4
        and isinstance(act[0], str)
        and isinstance(act[1], str)
        and isinstance(act[2], str)
        and isinstance(act[3], str)
    ):
        raise ValueError(f"system act {act!r}: expected [intent, domain, slot, value], four strings")
