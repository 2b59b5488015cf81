"""medmap: t-SimCNE and SimCLR maps of medical image collections."""

__version__ = "0.1.0"
