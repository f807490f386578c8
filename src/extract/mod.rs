//! The extract stage: read leads from the Bitrix24 REST API.
