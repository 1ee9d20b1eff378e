"""Framework adapters: hand a ``stoker.Loader`` to a training framework.

Each adapter is a module of its own that imports exactly one framework, so importing
``stoker`` never imports one: ``stoker.adapters.keras`` (Keras 3: ``model.fit`` input
and a port of Keras 2's ``fit_generator``), ``stoker.adapters.torch`` (``TorchLoader``:
tensors, pinned and on the device ahead of the step) and ``stoker.adapters.jax``
(``device_prefetch``: ``jax.Array`` batches, optionally sharded). The prefetch stage
the last two share imports no framework. A missing framework raises an
``ImportError`` that names the ``pip install 'stoker[...]'`` command.
"""
