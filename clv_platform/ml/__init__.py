"""Pure-Python modelling code for customer lifetime value: no Dagster import anywhere below.

Modules
-------
features
    The column contract of ``marts.training_examples`` / ``marts.customer_features`` and its validation.
estimator
    The contract every CLV model meets (fit, predict, probability_alive, contributions).
pyfunc
    Any fitted estimator as one MLflow pyfunc (imports mlflow).
metrics
    RMSE, MAE and the normalized Gini of a CLV ranking.
train
    The XGBoost rung (objective chosen on validation, BTYD stacked) and the fit of the whole ladder.
registry
    MLflow logging, registration, aliases (``champion``) and the promotion rule.
scoring
    Batch scoring with the model version on every row, and value tiers of the scores.
explain
    Per-customer top drivers for any rung, and global importance, from additive contributions.
drift
    Population stability index (hand-written and Evidently's) per column.
synthetic
    Small generated examples frames with a known signal, for tests.

Heavy libraries (xgboost, mlflow, evidently) are imported inside function bodies, so importing this
package costs only pandas and numpy.
"""
