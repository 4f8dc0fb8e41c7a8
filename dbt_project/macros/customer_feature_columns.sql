{#
    Generated from clv_platform/ml/features.py by `python -m clv_platform.ml.features`: edit there, not here.
    acquisition_channels(): the channels one-hot encoded as channel_<name>.
    customer_feature_columns(): the columns customer_features and training_examples carry after customer_id
    and cutoff_date, in order: every feature the model reads, then the readable attributes and dates.
#}
{% macro acquisition_channels() -%}
    {{ return([
        'organic_search',
        'paid_search',
        'social',
        'email',
        'referral',
        'direct',
    ]) }}
{%- endmacro %}

{% macro customer_feature_columns() -%}
    {{ return([
        'frequency',
        'recency',
        'T',
        'monetary_value',
        'orders_30d',
        'orders_90d',
        'orders_365d',
        'spend_30d',
        'spend_90d',
        'spend_365d',
        'items_30d',
        'items_90d',
        'items_365d',
        'distinct_products_30d',
        'distinct_products_90d',
        'distinct_products_365d',
        'orders_trend_90d_365d',
        'spend_trend_90d_365d',
        'purchase_gap_mean_days',
        'purchase_gap_stddev_days',
        'basket_value_mean',
        'basket_items_mean',
        'distinct_products',
        'product_diversity',
        'return_rate',
        'spend_share_90d',
        'sessions_90d',
        'session_seconds_mean_90d',
        'page_views_90d',
        'searches_90d',
        'add_to_cart_90d',
        'cart_to_purchase_90d',
        'tenure_days',
        'country_customer_share',
        'channel_organic_search',
        'channel_paid_search',
        'channel_social',
        'channel_email',
        'channel_referral',
        'channel_direct',
        'country',
        'acquisition_channel',
        'first_purchase_date',
        'last_purchase_date',
    ]) }}
{%- endmacro %}
