-- The latest recorded design of each campaign × channel × content version, one row per arm.
-- Empty until a live sync of a binding with variants or a holdout has recorded one.
with designs as (
    select * from {{ experiment_designs_relation() }} as designs
),

latest as (
    select
        campaign,
        channel,
        content_version,
        max(recorded_at) as recorded_at
    from designs
    group by campaign, channel, content_version
),

final as (
    select
        designs.campaign,
        designs.channel,
        designs.content_version,
        designs.arm,
        designs.expected_share,
        designs.recorded_at
    from designs
    inner join latest
        on
            designs.campaign = latest.campaign
            and designs.channel = latest.channel
            and designs.content_version = latest.content_version
            and designs.recorded_at = latest.recorded_at
)

select * from final
