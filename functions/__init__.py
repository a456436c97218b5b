"""Lambda handlers of the SAM application (template.yaml). Each folder is one
function's CodeUri; its module `app` holds `lambda_handler`."""
