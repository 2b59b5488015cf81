"""Write a run's interactive map as one offline HTML file: ``python explore.py run=<run dir>``
(installed: ``medmap-explore``)."""

from medmap.cli import explore

if __name__ == "__main__":
    explore()
