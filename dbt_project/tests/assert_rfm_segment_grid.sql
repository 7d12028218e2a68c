-- The RFM segment grid, written out by hand: rows = r_score 5..1, columns =
-- fm_score 1..5. Fails for any cell where rfm_segments says otherwise.
with expected (r_score, fm_score, rfm_segment) as (
    values
    (5, 1, 'New'), (5, 2, 'Potential Loyalist'), (5, 3, 'Potential Loyalist'), (5, 4, 'Champions'), (5, 5, 'Champions'),
    (4, 1, 'Promising'), (4, 2, 'Potential Loyalist'), (4, 3, 'Potential Loyalist'), (4, 4, 'Loyal'), (4, 5, 'Loyal'),
    (3, 1, 'About to Sleep'), (3, 2, 'About to Sleep'), (3, 3, 'Need Attention'), (3, 4, 'Loyal'), (3, 5, 'Loyal'),
    (2, 1, 'Hibernating'), (2, 2, 'Hibernating'), (2, 3, 'At Risk'), (2, 4, 'At Risk'), (2, 5, 'Can''t Lose'),
    (1, 1, 'Lost'), (1, 2, 'Hibernating'), (1, 3, 'At Risk'), (1, 4, 'At Risk'), (1, 5, 'Can''t Lose')
)

select expected.r_score, expected.fm_score, expected.rfm_segment as expected_segment, actual.rfm_segment
from expected
full outer join {{ ref('rfm_segments') }} as actual
    on expected.r_score = actual.r_score and expected.fm_score = actual.fm_score
where actual.rfm_segment is null or expected.rfm_segment is null or actual.rfm_segment <> expected.rfm_segment
