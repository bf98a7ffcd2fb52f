"""LeadOps services: everything the pages, the HTTP API and the jobs share."""
