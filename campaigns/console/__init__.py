"""The marketing console's pieces of the campaign admin (`campaigns.admin` assembles them): the list and page at a
glance (`glance`), bulk actions with their confirmation (`bulk`), and the incentive as plain form fields (`forms`)."""
