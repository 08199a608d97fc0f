"""labctl: does one Docker container eating a shared resource hurt its host?"""

__version__ = "0.1.0"
