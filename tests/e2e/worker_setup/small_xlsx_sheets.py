"""Sheets of 825 rows instead of 1,048,575, so that a few thousand demo rows fill several.

Run by every worker of the container-format tests' runtime before it imports its handler: the
sheet size is a constant of the format, not a setting the product reads from its configuration.
"""

from dataexport.formats.xlsx_writer import XlsxWriter

SHEET_ROWS = 825

XlsxWriter.sheet_rows = SHEET_ROWS
