"""Experiment: the service with ``gc.freeze()`` once start-up is done.

``python -m bench --app bench.gc_frozen:app`` measures what freezing buys: after TensorFlow and
the models are loaded, hundreds of thousands of long-lived objects sit in the GC's oldest
generation, and every full collection (triggered by the ~800 lists a parsed 28x28x1 JSON image
allocates) walks them all.
"""

from __future__ import annotations

import contextlib
import gc

from app.main import app

_lifespan = app.router.lifespan_context


@contextlib.asynccontextmanager
async def _frozen_lifespan(application):
    async with _lifespan(application) as state:
        gc.collect()
        gc.freeze()
        yield state


app.router.lifespan_context = _frozen_lifespan
