"""The built-in plugins of qcrd-bench.  They register through the same hooks as
third-party plugins (see ``qcrd_bench.hookspecs``)."""
