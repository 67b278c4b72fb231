"""Entry point of the backup container (ECS Fargate): one pg_dump of the database, for the
backup named by BACKUP_ID, streamed into S3 under backups/. Exits 0 only once a verified
archive is stored and reported on the backup's record; the state machine reads the rest."""

import sys

from aws_lambda_powertools import Logger

from dataexport import components
from dataexport.adapters.pg_dump import PostgresTools
from dataexport.adapters.postgres import read_database_secret
from dataexport.backup import BackupError
from dataexport.config import BackupTaskConfig, read_config
from dataexport.services.backups import run_backup_task

logger = Logger()

UNEXPECTED = BackupError(code="TASK_ERROR", message="The backup task failed unexpectedly.")


def main() -> int:
    config = read_config(BackupTaskConfig)
    logger.append_keys(backup_id=config.backup_id)
    services = components.backup_services(config)
    try:
        return run_backup_task(
            services,
            config.backup_id,
            read_database_secret(config.backup_database_secret_arn, config.database_location()),
            PostgresTools(config.pg_bin_dir),
        )
    except Exception:
        logger.exception("Backup task failed")
        services.store.save_task_error(config.backup_id, UNEXPECTED)
        return 1


if __name__ == "__main__":
    sys.exit(main())
