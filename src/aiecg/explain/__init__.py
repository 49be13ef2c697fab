"""Attributions (integrated gradients through captum, the optional `explain` extra) and exact FCN class activation maps."""
