{{ staged_labels('raw_mimic_cxr_jpg__negbio') }}
