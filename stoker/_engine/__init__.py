"""The engine: plans epochs, runs batches on workers, delivers them in order.

Layer 1: imports only ``stoker._errors``, ``_types``, ``_options``, the stdlib and
numpy.
"""
