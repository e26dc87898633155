# nfws: weight-space learning on neural fields.
import os

from snakemake.utils import min_version, validate

min_version("9.0")

from nfws.config_files import check_config_file
from nfws.device import check_config_devices
from nfws.jobenv import MALLOC_ENV, WORKFLOW_DIR_ENV
from nfws.results_lock import ResultsLock

# Every job inherits these: glibc keeps large activation buffers instead of returning them
# to the OS each step (they must be set before a job's Python process starts).
for _key, _value in MALLOC_ENV.items():
    os.environ.setdefault(_key, _value)
# The checkout that envs/nfws.post-deploy.sh installs into the `--sdm conda` environment.
os.environ[WORKFLOW_DIR_ENV] = workflow.basedir


# The embedded default; --configfile merges a run's own settings over it. Checked first:
# Snakemake's own message for a syntax error names no file, line or column.
check_config_file(os.path.join(workflow.basedir, "config.yaml"))


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")
check_config_devices(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/farm.smk"
include: "workflow/rules/gmn.smk"
include: "workflow/rules/mlora.smk"
include: "workflow/rules/sane.smk"


# One run at a time per results folder, whatever its working directory; taken once the
# DAG is built, so dry runs and the jobs Snakemake spawns take none (nfws.results_lock).
RESULTS_LOCK = ResultsLock(RESULTS)


onstart:
    if workflow.execution_settings.lock:
        RESULTS_LOCK.acquire()


onsuccess:
    RESULTS_LOCK.release()


onerror:
    RESULTS_LOCK.release()


rule all:
    input:
        all_targets,
    default_target: True
