CREATE DATABASE issuer;
CREATE DATABASE venue_admin;
CREATE DATABASE health_records;
