"""sum_abm."""
