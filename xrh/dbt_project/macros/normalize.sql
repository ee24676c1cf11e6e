{#- A text header value with surrounding blanks removed; blank or whitespace-only (how many archives write "not
    recorded") becomes NULL. -#}
{% macro blank_to_null(column) -%}
    cast(nullif(trim({{ column }}), '') as text)
{%- endmacro %}

{#- The measured numeric header tags, each with the staging column that holds its raw value. Every tag needs a row in
    the seed header_value_ranges (a relationships test says so). -#}
{% macro measured_header_tags() -%}
    {{ return({
        'KVP': 'kvp',
        'Exposure': 'exposure_mas_tag',
        'ExposureInmAs': 'exposure_in_mas_tag',
        'ExposureInuAs': 'exposure_uas_tag',
        'ExposureTime': 'exposure_time_ms_tag',
        'ExposureTimeInuS': 'exposure_time_us_tag',
        'XRayTubeCurrent': 'tube_current_ma_tag',
        'XRayTubeCurrentInuA': 'tube_current_ua_tag',
        'DistanceSourceToDetector': 'source_to_detector_mm',
        'PixelSpacing': 'pixel_spacing_row_mm',
        'ImagerPixelSpacing': 'imager_pixel_spacing_row_mm',
    }) }}
{%- endmacro %}
