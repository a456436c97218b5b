"""Critic: sentiment scoring of movie reviews, realtime and batch."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_ARTIFACT = REPO_ROOT / "model" / "artifact" / "model.tar.gz"
