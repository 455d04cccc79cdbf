"""Input and output records of the core, as numpy structured dtypes.

``MESSAGE_DTYPE`` and ``EVENT_DTYPE`` mirror the C structs ``Message`` and ``Event`` in
``_book.pxd`` field for field (C alignment, so ``align=True``). See ``docs/semantics.md``
for what each field means per operation and event kind.
"""

from __future__ import annotations

import numpy as np

MESSAGE_DTYPE = np.dtype(
    [
        ("timestamp", np.int64),
        ("order_id", np.int64),
        ("new_order_id", np.int64),
        ("price", np.int64),
        ("stop_price", np.int64),
        ("qty", np.int64),
        ("book", np.int32),
        ("owner", np.int32),
        ("op", np.int8),
        ("side", np.int8),
        ("tif", np.int8),
    ],
    align=True,
)

EVENT_DTYPE = np.dtype(
    [
        ("timestamp", np.int64),
        ("order_id", np.int64),
        ("maker_order_id", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("leaves_qty", np.int64),
        ("maker_leaves_qty", np.int64),
        ("book", np.int32),
        ("owner", np.int32),
        ("maker_owner", np.int32),
        ("message_index", np.int32),
        ("kind", np.int8),
        ("reason", np.int8),
        ("side", np.int8),
    ],
    align=True,
)

#: Per (book, owner) account of the core (``Books.accounts``).
ACCOUNT_DTYPE = np.dtype(
    [("position", np.int64), ("cash", np.int64), ("volume", np.int64), ("fees", np.int64)],
    align=True,
)

#: One resting order of a level's queue (``Books.level_queue``, the L3 view).
QUEUE_DTYPE = np.dtype(
    [("order_id", np.int64), ("qty", np.int64), ("timestamp", np.int64), ("owner", np.int32)],
    align=True,
)


def empty_messages(n: int) -> np.ndarray:
    """Return ``n`` zeroed messages (owner set to ``NO_OWNER``)."""
    msgs = np.zeros(n, dtype=MESSAGE_DTYPE)
    msgs["owner"] = -1
    return msgs


def empty_events(n: int) -> np.ndarray:
    """Return a zeroed event buffer of ``n`` records."""
    return np.zeros(n, dtype=EVENT_DTYPE)
