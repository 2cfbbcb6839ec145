#!/usr/bin/env bash
# The staged 8xH100 campaign (control, A/B, confirmation, record check; it stops at the first KILL).
# Kept for its old name; everything is in scripts/campaign.py (its --help lists the settings):
#
#   bash scripts/h100_campaign.sh [OUT]         DRY_RUN=1 bash scripts/h100_campaign.sh
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/campaign.py" "$@"
