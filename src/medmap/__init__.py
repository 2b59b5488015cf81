"""medmap: t-SimCNE and SimCLR maps of medical image collections."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from medmap import TSimCNE`` without importing torch for every ``import medmap``."""
    if name == "TSimCNE":
        from medmap.api import TSimCNE

        return TSimCNE
    raise AttributeError(name)
