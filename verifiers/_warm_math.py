"""Imported by the verifier pool's forkserver (never by user code): parse and compare one answer so
math-verify's parser tables are built once and every forked worker, including replacements after a
timeout kill, starts warm instead of paying the first-parse cost."""
from verifiers.math import warm

warm()
