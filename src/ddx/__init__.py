"""ddx: differential diagnosis for production systems.

Evidence (findings) goes in; a ranked differential of root causes, with the
evidence for and against each and the next best check, comes out.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
