"""The specializer: render a template for an exact problem, compile it, cache it, tune it.

- :mod:`em.specializer.render`  -- Mako templates in ``em/templates/<backend>/`` -> source text
- :mod:`em.specializer.compile` -- C++ source -> cached shared library (codepy's gcc toolchain)
- :mod:`em.specializer.tuning`  -- time code variants on the real data, remember the winner
- :mod:`em.specializer.cache`   -- where compiled kernels and the tuning file live
"""
