"""Sphinx configuration for the epiformer documentation."""

import warnings
from datetime import datetime
from importlib.metadata import metadata

# sphinx-autodoc-typehints calls a Sphinx API deprecated for Sphinx 10; not our warning to act on
warnings.filterwarnings("ignore", message=".*set_application.*")

info = metadata("epiformer")
project = info["Name"]
author = "the epiformer developers"
copyright = f"{datetime.now():%Y}, {author}"
version = release = info["Version"]

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
]
autosummary_generate = True
templates_path = ["_templates"]  # classes document their own members, not those inherited from torch / sklearn
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
typehints_defaults = "comma"
always_document_param_types = False
myst_enable_extensions = ["colon_fence", "dollarmath"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# Tutorials are executed on every build (and so on every `make test`); a failing cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True


html_theme = "sphinx_book_theme"
html_title = "epiformer"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "tutorials/README.md"]
