"""The garbage collector's view of a long-lived process (imports nothing of the services, so
that a card-drawing worker process can use it too)."""

import gc


def freeze_heap() -> None:
    """Move everything alive now into the collector's permanent generation. Called once a
    process has started (modules, the app, its runtime and caches live as long as the
    process): a full collection, which a burst of requests or a batch's rows sets off, then
    walks only what requests allocate, not the whole app (a pause of tens of milliseconds
    otherwise, straight into the p99)."""
    gc.collect()
    gc.freeze()
