"""A job record lists only its first file, as one with very many files lists only its first
hundred.

Run by every worker of that test's runtime before it imports its handler: how many files a job
lists is a constant of the product, not a setting it reads from its configuration.
"""

from dataexport.services import export_steps

# The step uses the name it imported from export_job.
setattr(export_steps, "JOB_FILES_LISTED", 1)  # noqa: B010 - not a name mypy sees exported
