"""Attributions: integrated gradients (captum, the optional `explain` extra) and exact FCN class activation
maps."""
