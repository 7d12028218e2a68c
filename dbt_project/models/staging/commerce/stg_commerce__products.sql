select
    product_id,
    product_name,
    coalesce(category, 'uncategorised') as category,
    price,
    _file,
    _row
from {{ ref('base_commerce__products') }}
where not _rejected
