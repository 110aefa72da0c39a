"""Evaluation datasets: reference problems, their prompts and expected answers."""
