"""`python -m {{ cookiecutter.package_name }}` runs the command-line interface."""

from {{ cookiecutter.package_name }}.cli import main

main()
